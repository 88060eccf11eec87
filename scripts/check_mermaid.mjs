// Parse Mermaid diagrams with Mermaid's own parser: exit 0 when every file parses, 1 with
// the parser's message otherwise. Usage: node check_mermaid.mjs <node_modules> <file>...
// (The modules are the ones `make install` puts in .venv/node.)
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const [modules, ...files] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(modules), "package.json"));
const { JSDOM } = require("jsdom");
const dom = new JSDOM("<!DOCTYPE html><body></body>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;

const manifest = require("mermaid/package.json");
const entry = path.join(path.dirname(require.resolve("mermaid/package.json")), manifest.exports["."].import);
const { default: mermaid } = await import(pathToFileURL(entry).href);

let failed = 0;
for (const file of files) {
  try {
    const result = await mermaid.parse(fs.readFileSync(file, "utf8"));
    console.log(`${file}: ${result.diagramType}`);
  } catch (error) {
    failed += 1;
    console.log(`${file}: ${error.message}`);
  }
}
process.exit(failed ? 1 : 0);

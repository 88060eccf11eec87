"""``python -m mlops_templates``: the ``mlops-templates`` command line."""

from mlops_templates.cli import main

raise SystemExit(main())

"""Put on the PYTHONPATH of a ``make mutate`` session (scripts/mutate.py): in a process
started by a test during mutmut's stats run, record every mutated function it calls in a
file the test's process reads (the container's servers and jobs run in child processes)."""

import os

if os.environ.get("MUTANT_UNDER_TEST") == "stats" and os.environ.get("MLOPS_MUTATE_HITS"):
    def _install():
        from mutmut.mutation import trampoline

        path = os.path.join(os.environ["MLOPS_MUTATE_HITS"], f"hits-{os.getpid()}")

        def record(name, caller=None):
            # A process that dropped root (the container's privilege drop) may not be
            # able to write here: it only loses its report, never the code's behaviour.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            except OSError:
                return
            try:
                os.write(fd, (name + "\n").encode())
            finally:
                os.close(fd)

        trampoline.record_trampoline_hit = record

    _install()

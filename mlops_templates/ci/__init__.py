"""GitHub Actions and GitLab CI as the orchestrator (``pipeline.orchestrator``).

:mod:`.oidc` says which identities the ``ci-oidc`` stack's role trusts; :mod:`.workflows`
renders the workflow that does what the CodePipeline does; :mod:`.steps` holds the steps
the workflow runs with this library (the pipeline stack's outputs as the build's
environment, the training run, the per-run stacks' deployment); :mod:`.validate` runs
the linters the rendered workflows are held to.
"""

"""The kind-based end-to-end run (e2e/kind/run.sh) and the Tiltfile: they need Docker, so
the tests here only check that they refuse clearly without it and are well-formed."""

"""Many runs: a sweep's grid expanded into runs (plan), where its cells execute (executors), equal tuning (tune)."""

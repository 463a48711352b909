"""Where a run's work happens: this process, Prefect tasks, or a Ray cluster through Prefect."""

"""The automation: partitions, jobs, sensors and schedules."""

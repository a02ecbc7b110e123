"""What runrelay is about, free of AWS and Runware: tasks, their lifecycle, jobs (one per input file)."""

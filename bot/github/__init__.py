"""The adapter to GitHub: the App client, commit files, OAuth, the README block, check-run
text and reporting. It knows nothing of jobs, operations or the monitor."""

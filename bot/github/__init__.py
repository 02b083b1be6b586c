"""Everything that talks to GitHub: the App client, reporting, and the texts it renders."""

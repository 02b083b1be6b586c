"""The TLJH host: the shell scripts run on a course's server (``tljh``), its hub accounts
(``accounts``), what it reports in one round trip (``observe``), shared folders
(``shared``), and nbgrader's set-up and programs (``assignments``)."""

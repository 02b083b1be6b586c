"""The course: its configuration files read (``config``), checked (``validate``), and the
links the README shows (``links``)."""

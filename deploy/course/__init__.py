"""The course: its configuration files read (``config``, with the package files in
``packages``), checked (``validate``), and the links the README shows (``links``)."""

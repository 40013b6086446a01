"""The ``sslbench`` commands, one module each, apart from the library they drive; the dispatcher
is ``sslbench.cli``."""

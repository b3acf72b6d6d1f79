"""The command line (python -m training): one module per subcommand where it has grown one."""

// Placeholder entry point until the CLI issue lands its subcommands.
print("skein: no subcommands yet")

"""The command line: parsing, one function per command, and what the commands print; the only place errors become messages and exit codes."""
from agentd.cli.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    """``agentd.cli:main``, the console script an install made before the folders names (its systemd
    unit runs it): the same as ``agentd.cli.cli.main``."""
    return cli_main(argv)

"""The docs that are generated from code stay in step with it."""

from pathlib import Path

from agentd.config import reference_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_configuration_reference_lists_every_key_of_the_schema_as_generated():
    assert reference_markdown() in (DOCS / "configuration.md").read_text()


def test_every_doc_the_readme_links_exists():
    import re

    readme = (DOCS.parent / "README.md").read_text()
    for link in re.findall(r"\]\((docs/[^)]+)\)", readme):
        assert (DOCS.parent / link).exists(), link

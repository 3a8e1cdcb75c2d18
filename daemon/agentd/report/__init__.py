"""``agentd report``: the numbers behind one page of plots (``data.gather``, the dict ``report --json``
prints) and the self-contained HTML page drawn from them (``page.render``)."""

"""`klab report`: one self-contained HTML page per run (matrix, failures, traces, trends).

`model` gathers what the page shows from the run directory and the history, `charts` turns
the bpftrace JSON into chart series, `render` fills the Jinja2 template and inlines the
vendored Chart.js, the stylesheet and the page's script, so the file opens from `file://`
on a laptop with no network.
"""

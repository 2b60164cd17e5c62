"""The GitHub Action's entrypoint: `python -m entrypoint`, in the container or from the repository root.

GitHub glue only: read the inputs once, run the converter, publish (PR comment, release
assets), and write the step's outputs, summary and annotations. Nothing here is needed to
convert a model, and nothing in the converter knows about GitHub.
"""

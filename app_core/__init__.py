"""Patchlight's app layer without Streamlit: uploads, model sources, settings, per-view arrays,
clicks and exports — plain Python and numpy, unit-tested without a browser.

Only app.py and app_pages/ import streamlit; they call these modules for every number they
show. This package may import model/ and viz/; neither of them imports it.
"""

"""Streamlit-free app logic: what the pages use that needs no browser session."""

"""The pages of the Patchlight app (st.navigation) and what they share (shared.py)."""

"""Everything needed to run c2d-functions with no Azure account. Dev only: never deployed (.funcignore)."""

"""Claim-check fetching: the HTTP(S) client, its socket transport and the SSRF guard."""

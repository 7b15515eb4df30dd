"""Single sign-on through each tenant's OpenID provider (authorization code flow with PKCE)."""

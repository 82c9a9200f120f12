"""Who may do what: the access policy, roles, users, teams, API tokens, login throttling.

Every record operation asks the policy here, so the pages, the API, imports and
the CLI get the same answer.
"""

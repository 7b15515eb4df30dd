"""Identity data access: every read and write of users, sessions, login failures and API
tokens, as typed rows.

Each function runs in the transaction open in its context (the caller opens it: a global one
for users, sessions and failures, the tenant's for its tokens); none opens or commits one of
its own, except the token lookup, which runs before any transaction (see ``token_member``).
Times the database compares with its own clock are written from that clock.
"""

from opencdmo.identity.queries._failures import (
    FailureCount,
    Failures,
    add_failure,
    clear_failures,
    count_failures,
    seconds_left,
)
from opencdmo.identity.queries._sessions import (
    SessionRow,
    end_session,
    end_session_by_token,
    end_user_sessions,
    enter_tenant,
    insert_session,
    open_session,
    touch_session,
)
from opencdmo.identity.queries._tokens import (
    TokenMember,
    TokenRow,
    TokenState,
    insert_token,
    revoke_token,
    token_member,
    token_state,
    tokens,
    touch_token,
)
from opencdmo.identity.queries._users import (
    UserInfo,
    email_taken,
    insert_user,
    notify_by_email,
    password_hash,
    set_active,
    set_notify_by_email,
    set_password_hash,
    set_signing_password_hash,
    signing_password_hash,
    user_by_email,
    user_by_id,
    wanting_mail,
)

__all__ = [
    "FailureCount",
    "Failures",
    "SessionRow",
    "TokenMember",
    "TokenRow",
    "TokenState",
    "UserInfo",
    "add_failure",
    "clear_failures",
    "count_failures",
    "email_taken",
    "end_session",
    "end_session_by_token",
    "end_user_sessions",
    "enter_tenant",
    "insert_session",
    "insert_token",
    "insert_user",
    "notify_by_email",
    "open_session",
    "password_hash",
    "revoke_token",
    "seconds_left",
    "set_active",
    "set_notify_by_email",
    "set_password_hash",
    "set_signing_password_hash",
    "signing_password_hash",
    "token_member",
    "token_state",
    "tokens",
    "touch_session",
    "touch_token",
    "user_by_email",
    "user_by_id",
    "wanting_mail",
]

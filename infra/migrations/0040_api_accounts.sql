-- API: refresh tokens (rotation and reuse detection) and the audit log.

-- One row per refresh token ever issued. A token is used once: using it marks it `used_at` and
-- issues its successor in the same family. Presenting a used (or revoked) token again means it
-- was stolen or replayed: the whole family is revoked. Logout revokes the family too.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,  -- the token's jti
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- Every state-changing request: who, what, when, from where, and the result. No foreign keys, so
-- the trail outlives the users and servers it mentions.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    time        timestamptz NOT NULL DEFAULT now(),
    user_id     uuid,
    server_id   uuid,
    method      text NOT NULL,
    path        text NOT NULL,
    action      text NOT NULL,
    status      integer NOT NULL,
    client      text,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_server_time_idx ON audit_log (server_id, time DESC) WHERE server_id IS NOT NULL;
CREATE INDEX audit_log_user_time_idx ON audit_log (user_id, time DESC);

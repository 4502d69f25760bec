-- Sharing: an owner grants another user a role on a server. The owner (servers.owner_id) always
-- has every right; a share is 'viewer' (read), 'operator' (also commands and Docker) or 'owner'
-- (co-owner: also settings, keys, shares). A user with neither sees a 404 for the server.
CREATE TABLE server_shares (
    server_id  uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('viewer', 'operator', 'owner')),
    granted_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server_id, user_id)
);
CREATE INDEX server_shares_user_idx ON server_shares (user_id);

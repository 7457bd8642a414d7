-- The stored delegated sign-in: MSAL's token cache for one app in one
-- tenant, sealed with AES-256-GCM under BULKASSIGN_TOKEN_CACHE_KEY before
-- it leaves the process. Nothing here is readable without the key: the
-- tokens, the account and its name are all inside ciphertext.
CREATE TABLE token_caches (
    name       text        PRIMARY KEY,            -- 'delegated/{tenant}/{client id}'
    key_check  bytea       NOT NULL,               -- tells a wrong key from a damaged cache; reveals nothing of the key
    ciphertext bytea       NOT NULL,               -- format byte, nonce, sealed cache
    version    bigint      NOT NULL DEFAULT 1,     -- bumped by every write
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

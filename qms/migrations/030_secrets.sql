-- Secrets, encrypted by crowdtui.secrets (AES-256-GCM). Only nonce and ciphertext are stored.
CREATE TABLE IF NOT EXISTS secrets (
    name        TEXT PRIMARY KEY,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);

-- Documents: typed, versioned (nothing overwritten), with a checkout lease.
CREATE TABLE doc_types (
    code        TEXT    PRIMARY KEY,        -- "SOP"
    name        TEXT    NOT NULL,
    executable  INTEGER NOT NULL CHECK (executable IN (0, 1)),
    next_number INTEGER NOT NULL DEFAULT 1  -- claimed with UPDATE ... RETURNING
);
INSERT INTO doc_types (code, name, executable) VALUES
    ('SOP',  'Standard operating procedure', 0),
    ('SPEC', 'Specification',                0),
    ('CR',   'Change request',               1),
    ('TP',   'Test protocol',                1);

CREATE TABLE documents (
    id               TEXT    PRIMARY KEY,   -- "SOP-001"
    doc_type         TEXT    NOT NULL REFERENCES doc_types (code),
    title            TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    version          INTEGER NOT NULL,      -- latest version number
    author           TEXT    NOT NULL,
    created_at       REAL    NOT NULL,
    updated_at       REAL    NOT NULL,
    holder           TEXT,                  -- checkout lease
    taken_at         REAL,
    lease_expires_at REAL,
    round            INTEGER NOT NULL DEFAULT 0  -- routing round of the open tasks
);
CREATE INDEX documents_state ON documents (state);

CREATE TABLE doc_versions (
    doc_id     TEXT    NOT NULL REFERENCES documents (id),
    number     INTEGER NOT NULL,
    author     TEXT    NOT NULL,
    created_at REAL    NOT NULL,
    note       TEXT,
    content    TEXT    NOT NULL,
    PRIMARY KEY (doc_id, number)
);

-- The length chosen at checkout, so a renewal without a length keeps it.
ALTER TABLE documents ADD COLUMN lease_seconds REAL;

-- Route authority (issue 18): every route remembers its owner ("operator" or the agent
-- that added it) and its state ("active", or "pending" while an agent's wide route waits
-- for the operator's approval). Existing rows: owned by whoever added them (created_by,
-- "operator" for the CLI and the console), active. Operator routes are renumbered to
-- come first, keeping their order; agents' routes follow in their order.
ALTER TABLE engine_routes ADD COLUMN owner TEXT NOT NULL DEFAULT 'operator';
ALTER TABLE engine_routes ADD COLUMN state TEXT NOT NULL DEFAULT 'active'
    CHECK (state IN ('active', 'pending'));
UPDATE engine_routes SET owner = created_by;
UPDATE engine_routes SET position = (
    SELECT n FROM (
        SELECT id, ROW_NUMBER() OVER (ORDER BY owner != 'operator', position, id) AS n FROM engine_routes
    ) AS ordered WHERE ordered.id = engine_routes.id
);

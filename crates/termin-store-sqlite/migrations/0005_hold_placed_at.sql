-- When a hold was first placed (renewals keep it), and the holder's live holds by holder.
ALTER TABLE slot_hold ADD COLUMN placed_at TEXT NOT NULL DEFAULT '';
UPDATE slot_hold SET placed_at = held_until;
CREATE INDEX slot_hold_by_holder ON slot_hold (holder, held_until);

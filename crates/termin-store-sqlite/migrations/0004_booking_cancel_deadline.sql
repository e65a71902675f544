-- The cancellation deadline (an instant) the policy set when the slot was booked; NULL when
-- no policy applied. Later policy changes cannot loosen it.
ALTER TABLE slot_booking ADD COLUMN cancel_deadline TEXT;

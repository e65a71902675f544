-- The scheduling projection: each local reference of a resource paired with its date, for the
-- IG's searches by a reference and a date of the same resource (Slot schedule + start,
-- Appointment actor + date). One range of search_reference_date_by_target reads the
-- resources of one target in date order, so a page sorted by that date stops after the page.
-- Written with the other index rows (termin-store-sql's index.rs); its indexes and the fill from
-- those rows follow in termin-store-sql's migrations/search_reference_date.sql.
CREATE TABLE search_reference_date (
    res_type    text COLLATE "C" NOT NULL,
    res_id      text COLLATE "C" NOT NULL,
    param       text COLLATE "C" NOT NULL,
    target_type text COLLATE "C" NOT NULL,
    target_id   text COLLATE "C" NOT NULL,
    version     text COLLATE "C",
    base        text COLLATE "C",
    date_param  text COLLATE "C" NOT NULL,
    low         bigint NOT NULL,
    high        bigint NOT NULL
);

-- Shared with the other backend (termin-store-sql/migrations):
-- shared: search_reference_date

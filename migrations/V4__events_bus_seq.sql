-- An event stream resumes by the bus's event number (the SSE id), which the service continues
-- across restarts (store::ReportStore::next_bus_seq); this finds the events after one.
CREATE INDEX events_bus_seq ON events (bus_seq);

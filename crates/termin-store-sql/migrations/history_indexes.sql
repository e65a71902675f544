-- The indexes of resource_history, alike in both dialects; run after the backend's first step.
CREATE INDEX resource_history_by_type ON resource_history (res_type, seq);
CREATE INDEX resource_history_by_resource ON resource_history (res_type, res_id, seq);

-- Who provisioned a market: the operator records the Market resource ("<namespace>/<name>"),
-- the local stack leaves it NULL. Market names are global in the registry but Markets are
-- namespaced in Kubernetes: a second Market of the same name in another namespace must be
-- refused, not given the first one's partition and engine (nor drain it when deleted).
ALTER TABLE markets ADD COLUMN owner text;

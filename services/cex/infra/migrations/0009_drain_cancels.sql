-- The drain of a deleted market (cex.infra.provisioning.begin_drain): the command number
-- of the last CANCEL_ALL it queued for each user. An open order whose ORDER_CREATE is
-- numbered before it is cancelled by it (the engine applies commands in number order), so
-- the drain queues another CANCEL_ALL for a user only for an order created after. Cleared
-- when a new drain of the market begins.
CREATE TABLE drain_cancels (
    market          text NOT NULL REFERENCES markets (name),
    user_id         bigint NOT NULL REFERENCES users (id),
    command_seq     bigint NOT NULL,
    PRIMARY KEY (market, user_id)
);

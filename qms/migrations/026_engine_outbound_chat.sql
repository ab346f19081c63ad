-- Outbound items are sent in order per chat: find an older waiting item of the same chat fast.
CREATE INDEX engine_outbound_chat ON engine_outbound(chat, state, id);

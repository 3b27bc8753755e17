-- staging request 1 of 12; counts at []
SELECT 1 / (CASE WHEN epoch = 7 THEN 1 ELSE 0 END) FROM "cdc"._sluice_writers WHERE pipeline = 'demo';
CREATE TABLE "cdc"."_sluice_stage_2a97516c354b_7_3_1" (LIKE "cdc"."orders_cdc");
INSERT INTO "cdc"."_sluice_stage_2a97516c354b_7_3_1" (table_name, keys, event_id, last_event_name, approx_creation_timestamp_millis, new_image, old_image, error, has_parsing_error, is_deleted, is_ttl_delete, raw_payload_size_bytes, raw_payload, change_micros, change_seq, source_position) VALUES ('orders', '{"id":"a"}', 'e-a', 'MODIFY', 1000, NULL, JSON_PARSE('{"id":"a"}'), NULL, FALSE, FALSE, FALS… (58046 bytes);
CREATE TABLE "cdc"."_sluice_pieces_2a97516c354b_7_3_0" (n BIGINT NOT NULL, body VARBYTE(16777216) NOT NULL);
-- staging request 2 of 12; counts at []
SELECT 1 / (CASE WHEN epoch = 7 THEN 1 ELSE 0 END) FROM "cdc"._sluice_writers WHERE pipeline = 'demo';
INSERT INTO "cdc"."_sluice_pieces_2a97516c354b_7_3_0" (n, body) VALUES (0, FROM_HEX('7b226964223a2261222c226e6f7465223a22787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787… (90104 bytes);
-- staging request 3 of 12; counts at []
SELECT 1 / (CASE WHEN epoch = 7 THEN 1 ELSE 0 END) FROM "cdc"._sluice_writers WHERE pipeline = 'demo';
UPDATE "cdc"."_sluice_pieces_2a97516c354b_7_3_0" SET body = body || FROM_HEX('7878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878… (90108 bytes);
-- staging request 4 of 12; counts at []
SELECT 1 / (CASE WHEN epoch = 7 THEN 1 ELSE 0 END) FROM "cdc"._sluice_writers WHERE pipeline = 'demo';
UPDATE "cdc"."_sluice_pieces_2a97516c354b_7_3_0" SET body = body || FROM_HEX('7878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878… (90108 bytes);
-- staging request 5 of 12; counts at []
SELECT 1 / (CASE WHEN epoch = 7 THEN 1 ELSE 0 END) FROM "cdc"._sluice_writers WHERE pipeline = 'demo';
UPDATE "cdc"."_sluice_pieces_2a97516c354b_7_3_0" SET body = body || FROM_HEX('7878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878… (90108 bytes);
-- staging request 6 of 12; counts at []
SELECT 1 / (CASE WHEN epoch = 7 THEN 1 ELSE 0 END) FROM "cdc"._sluice_writers WHERE pipeline = 'demo';
UPDATE "cdc"."_sluice_pieces_2a97516c354b_7_3_0" SET body = body || FROM_HEX('7878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878… (90108 bytes);
-- staging request 7 of 12; counts at []
SELECT 1 / (CASE WHEN epoch = 7 THEN 1 ELSE 0 END) FROM "cdc"._sluice_writers WHERE pipeline = 'demo';
UPDATE "cdc"."_sluice_pieces_2a97516c354b_7_3_0" SET body = body || FROM_HEX('7878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878… (90108 bytes);
-- staging request 8 of 12; counts at []
SELECT 1 / (CASE WHEN epoch = 7 THEN 1 ELSE 0 END) FROM "cdc"._sluice_writers WHERE pipeline = 'demo';
UPDATE "cdc"."_sluice_pieces_2a97516c354b_7_3_0" SET body = body || FROM_HEX('7878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878… (90108 bytes);
-- staging request 9 of 12; counts at []
SELECT 1 / (CASE WHEN epoch = 7 THEN 1 ELSE 0 END) FROM "cdc"._sluice_writers WHERE pipeline = 'demo';
UPDATE "cdc"."_sluice_pieces_2a97516c354b_7_3_0" SET body = body || FROM_HEX('7878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878… (90108 bytes);
-- staging request 10 of 12; counts at []
SELECT 1 / (CASE WHEN epoch = 7 THEN 1 ELSE 0 END) FROM "cdc"._sluice_writers WHERE pipeline = 'demo';
UPDATE "cdc"."_sluice_pieces_2a97516c354b_7_3_0" SET body = body || FROM_HEX('7878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878… (80148 bytes);
UPDATE "cdc"."_sluice_stage_2a97516c354b_7_3_1" SET new_image = JSON_PARSE("cdc"."_sluice_pieces_2a97516c354b_7_3_0".body) FROM "cdc"."_sluice_pieces_2a97516c354b_7_3_0" WHERE "cdc"."_sluice_pieces_2a97516c354b_7_3_0".n = 0 AND "cdc"."_sluice_stage_2a97516c354b_7_3_1".table_name = 'orders' AND "cdc"."_sluice_stage_2a97516c354b_7_3_1".keys = '{"id":"a"}';
CREATE TABLE "cdc"."_sluice_stage_2a97516c354b_7_3_2" (LIKE "cdc"."other_cdc");
-- staging request 11 of 12; counts at []
SELECT 1 / (CASE WHEN epoch = 7 THEN 1 ELSE 0 END) FROM "cdc"._sluice_writers WHERE pipeline = 'demo';
INSERT INTO "cdc"."_sluice_stage_2a97516c354b_7_3_2" (table_name, keys, event_id, last_event_name, approx_creation_timestamp_millis, new_image, old_image, error, has_parsing_error, is_deleted, is_ttl_delete, raw_payload_size_bytes, raw_payload, change_micros, change_seq, source_position, "s3_uri") VALUES ('orders', '{"id":"c"}', 'e-c', 'REMOVE', 1000, NULL, JSON_PARSE('{"id":"c"}'), NULL, FALSE, T… (89485 bytes);
-- staging request 12 of 12; counts at []
SELECT 1 / (CASE WHEN epoch = 7 THEN 1 ELSE 0 END) FROM "cdc"._sluice_writers WHERE pipeline = 'demo';
INSERT INTO "cdc"."_sluice_stage_2a97516c354b_7_3_2" (table_name, keys, event_id, last_event_name, approx_creation_timestamp_millis, new_image, old_image, error, has_parsing_error, is_deleted, is_ttl_delete, raw_payload_size_bytes, raw_payload, change_micros, change_seq, source_position, "s3_uri") VALUES ('orders', '{"id":"d187"}', 'e-d187', 'MODIFY', 1000, JSON_PARSE('{"id":"d187","note":"it''s a… (54346 bytes);
DROP TABLE "cdc"."_sluice_pieces_2a97516c354b_7_3_0";
-- transaction 1 of 1; counts at [(3, 301, "orders_cdc"), (9, 600, "other_cdc")]
SELECT 1 / (CASE WHEN epoch = 7 THEN 1 ELSE 0 END) FROM "cdc"._sluice_writers WHERE pipeline = 'demo';
DELETE FROM "cdc"."_sluice_stage_2a97516c354b_7_3_1" USING "cdc"."orders_cdc" AS o WHERE "cdc"."_sluice_stage_2a97516c354b_7_3_1".table_name = o.table_name AND "cdc"."_sluice_stage_2a97516c354b_7_3_1".keys = o.keys AND ((o.change_micros > "cdc"."_sluice_stage_2a97516c354b_7_3_1".change_micros OR (o.change_micros = "cdc"."_sluice_stage_2a97516c354b_7_3_1".change_micros AND (LEN(o.change_seq) > LEN(… (737 bytes);
SELECT COUNT(CASE WHEN is_deleted THEN 1 END), COUNT(CASE WHEN NOT is_deleted THEN 1 END) FROM "cdc"."_sluice_stage_2a97516c354b_7_3_1";
DELETE FROM "cdc"."orders_cdc" USING "cdc"."_sluice_stage_2a97516c354b_7_3_1" WHERE "orders_cdc".table_name = "cdc"."_sluice_stage_2a97516c354b_7_3_1".table_name AND "orders_cdc".keys = "cdc"."_sluice_stage_2a97516c354b_7_3_1".keys;
INSERT INTO "cdc"."orders_cdc" (table_name, keys, event_id, last_event_name, approx_creation_timestamp_millis, new_image, old_image, error, has_parsing_error, is_deleted, is_ttl_delete, raw_payload_size_bytes, raw_payload, change_micros, change_seq, source_position) SELECT table_name, keys, event_id, last_event_name, approx_creation_timestamp_millis, new_image, old_image, error, has_parsing_error,… (553 bytes);
DROP TABLE "cdc"."_sluice_stage_2a97516c354b_7_3_1";
DELETE FROM "cdc"."_sluice_stage_2a97516c354b_7_3_2" USING "cdc"."other_cdc" AS o WHERE "cdc"."_sluice_stage_2a97516c354b_7_3_2".table_name = o.table_name AND "cdc"."_sluice_stage_2a97516c354b_7_3_2".keys = o.keys AND ((o.change_micros > "cdc"."_sluice_stage_2a97516c354b_7_3_2".change_micros OR (o.change_micros = "cdc"."_sluice_stage_2a97516c354b_7_3_2".change_micros AND (LEN(o.change_seq) > LEN("… (736 bytes);
DELETE FROM "cdc"."_sluice_stage_2a97516c354b_7_3_2" USING "cdc"._sluice_tombstones AS b WHERE b.target = 'other_cdc' AND "cdc"."_sluice_stage_2a97516c354b_7_3_2".table_name = b.table_name AND "cdc"."_sluice_stage_2a97516c354b_7_3_2".keys = b.keys AND ((b.change_micros > "cdc"."_sluice_stage_2a97516c354b_7_3_2".change_micros OR (b.change_micros = "cdc"."_sluice_stage_2a97516c354b_7_3_2".change_mic… (770 bytes);
SELECT COUNT(CASE WHEN is_deleted THEN 1 END), COUNT(CASE WHEN NOT is_deleted THEN 1 END) FROM "cdc"."_sluice_stage_2a97516c354b_7_3_2";
DELETE FROM "cdc"."other_cdc" USING "cdc"."_sluice_stage_2a97516c354b_7_3_2" WHERE "other_cdc".table_name = "cdc"."_sluice_stage_2a97516c354b_7_3_2".table_name AND "other_cdc".keys = "cdc"."_sluice_stage_2a97516c354b_7_3_2".keys;
INSERT INTO "cdc"."other_cdc" (table_name, keys, event_id, last_event_name, approx_creation_timestamp_millis, new_image, old_image, error, has_parsing_error, is_deleted, is_ttl_delete, raw_payload_size_bytes, raw_payload, change_micros, change_seq, source_position, "s3_uri") SELECT table_name, keys, event_id, last_event_name, approx_creation_timestamp_millis, new_image, old_image, error, has_parsi… (593 bytes);
DELETE FROM "cdc"._sluice_tombstones USING "cdc"."_sluice_stage_2a97516c354b_7_3_2" WHERE _sluice_tombstones.target = 'other_cdc' AND _sluice_tombstones.table_name = "cdc"."_sluice_stage_2a97516c354b_7_3_2".table_name AND _sluice_tombstones.keys = "cdc"."_sluice_stage_2a97516c354b_7_3_2".keys;
INSERT INTO "cdc"._sluice_tombstones (target, table_name, keys, change_micros, change_seq, event_id, source_position) SELECT 'other_cdc', table_name, keys, change_micros, change_seq, event_id, source_position FROM "cdc"."_sluice_stage_2a97516c354b_7_3_2" WHERE is_deleted;
DROP TABLE "cdc"."_sluice_stage_2a97516c354b_7_3_2";
DELETE FROM "cdc"._sluice_dead_letters WHERE pipeline = 'demo' AND origin IN ('stream.jsonl:2');
INSERT INTO "cdc"._sluice_dead_letters (pipeline, origin, table_name, reason, raw, raw_size_bytes, failed_at) VALUES ('demo', 'stream.jsonl:2', 'orders', 'not JSON: ''x''', FROM_HEX('785c79'), 3, GETDATE());
DELETE FROM "cdc"._sluice_checkpoints WHERE pipeline = 'demo' AND stream IN ('stream.jsonl');
INSERT INTO "cdc"._sluice_checkpoints (pipeline, stream, position, epoch, committed_at) VALUES ('demo', 'stream.jsonl', '{"offset":9,"line":4}', 7, GETDATE());

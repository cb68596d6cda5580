-- Found by test_property_roundtrip (shrunk by hand): SQLite 3.40's json_array() writes ±Infinity as the
-- bare words Inf/-Inf, which is not JSON; introspect's one-pass profile read it with json.loads and `init` crashed.
CREATE TABLE "t0 from" (a VARCHAR(10), "B", "has space" INTEGER);
INSERT INTO "t0 from" VALUES ('x', -9e999, 1), ('y', 9e999, 2), (NULL, 'text', NULL), ('z', 66, 3);

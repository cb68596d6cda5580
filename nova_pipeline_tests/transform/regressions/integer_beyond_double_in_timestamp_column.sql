-- Found by test_property_roundtrip in CI: a REAL like -1.6295167231907284e16 in a TIMESTAMP column is stored
-- as an INTEGER (NUMERIC affinity); the timestamp cast widened it to float64 with a checked cast, which raised
-- ArrowInvalid and failed the whole table instead of quarantining the row as out of range.
CREATE TABLE "t2 Odd" ("has space" TIMESTAMP, id INTEGER, d DOUBLE);
INSERT INTO "t2 Odd" VALUES ('2024-01-05', 1, 1.5), (-1.6295167231907284e16, 2, 2.5), ('2024-01-06', 3, 9007199254740993);

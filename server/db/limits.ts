// Limits of Postgres column types that inputs are checked against before they are written
// (a value past them fails as it is written, with the database's message, not the sender's).

/** The largest value of an `Int` column (Postgres `integer`). */
export const INT_COLUMN_MAX = 2_147_483_647;

// Package compat holds examples and tests of writeback under the libraries
// existing applications already use: GORM, sqlx, lib/pq, otelsql and sqlmock.
// It is a module of its own so that these libraries never become
// dependencies of writeback itself.
package compat

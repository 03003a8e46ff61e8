package main

// The base drivers the command can open a DSN's database with: the ones
// writeback has a dialect for.
import (
	_ "github.com/go-sql-driver/mysql" // driver=mysql (MySQL, MariaDB)
	_ "github.com/jackc/pgx/v5/stdlib" // driver=pgx
	_ "github.com/mattn/go-sqlite3"    // driver=sqlite3
)

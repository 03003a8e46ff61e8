package compat

import (
	_ "github.com/XSAM/otelsql"
	_ "github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
	_ "gorm.io/driver/postgres"
	_ "gorm.io/driver/sqlite"
	_ "gorm.io/gorm"
)

module ferrometal.dev/tests/goregistry

go 1.22

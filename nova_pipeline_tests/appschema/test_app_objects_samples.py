"""Chinook-like and Northwind-like databases with the views typical of those samples: every table loads
content-equal, every view exists in PostgreSQL and returns SQLite's rows, with no spec edits."""

import sqlite3

import psycopg
import pytest

from nova_pipeline_tests.cli_runs import init_and_migrate
from nova_pipeline_tests.appschema.test_app_objects import same_rows


def build_chinook(path):
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE Genre (GenreId INTEGER PRIMARY KEY NOT NULL, Name NVARCHAR(120));
            CREATE TABLE Artist (ArtistId INTEGER PRIMARY KEY NOT NULL, Name NVARCHAR(120));
            CREATE TABLE Album (AlbumId INTEGER PRIMARY KEY NOT NULL, Title NVARCHAR(160) NOT NULL,
                                ArtistId INTEGER NOT NULL REFERENCES Artist (ArtistId));
            CREATE TABLE Track (TrackId INTEGER PRIMARY KEY NOT NULL, Name NVARCHAR(200) NOT NULL,
                                AlbumId INTEGER REFERENCES Album (AlbumId), GenreId INTEGER REFERENCES Genre (GenreId),
                                Milliseconds INTEGER NOT NULL, UnitPrice NUMERIC(10,2) NOT NULL);
            CREATE TABLE Customer (CustomerId INTEGER PRIMARY KEY NOT NULL, FirstName NVARCHAR(40) NOT NULL,
                                   LastName NVARCHAR(20) NOT NULL, Country NVARCHAR(40), Email NVARCHAR(60) NOT NULL);
            CREATE TABLE Invoice (InvoiceId INTEGER PRIMARY KEY NOT NULL,
                                  CustomerId INTEGER NOT NULL REFERENCES Customer (CustomerId),
                                  InvoiceDate DATETIME NOT NULL, BillingCountry NVARCHAR(40), Total NUMERIC(10,2) NOT NULL);
            CREATE TABLE InvoiceLine (InvoiceLineId INTEGER PRIMARY KEY NOT NULL,
                                      InvoiceId INTEGER NOT NULL REFERENCES Invoice (InvoiceId),
                                      TrackId INTEGER NOT NULL REFERENCES Track (TrackId),
                                      UnitPrice NUMERIC(10,2) NOT NULL, Quantity INTEGER NOT NULL);
            CREATE VIEW "Invoice Totals" AS
                SELECT i.InvoiceId, c.FirstName || ' ' || c.LastName AS Customer, strftime('%Y', i.InvoiceDate) AS Year,
                       COUNT(il.InvoiceLineId) AS Lines, SUM(il.UnitPrice * il.Quantity) AS Amount
                FROM Invoice i JOIN Customer c ON c.CustomerId = i.CustomerId
                JOIN InvoiceLine il ON il.InvoiceId = i.InvoiceId
                GROUP BY i.InvoiceId;
            CREATE VIEW customer_spend AS
                SELECT Customer, Year, SUM(Amount) AS Spent, COUNT(*) AS Invoices FROM "Invoice Totals" GROUP BY Customer, Year;
            CREATE VIEW top_genres AS
                SELECT g.Name AS Genre, COUNT(*) AS Tracks, ROUND(AVG(t.Milliseconds) / 1000.0, 1) AS AvgSeconds
                FROM Track t JOIN Genre g ON g.GenreId = t.GenreId
                GROUP BY g.GenreId ORDER BY Tracks DESC, g.GenreId LIMIT 3;
            CREATE VIEW album_tracks AS
                SELECT ar.Name AS Artist, al.Title AS Album, group_concat(t.Name, '; ') AS Tracks,
                       ifnull(SUM(t.Milliseconds), 0) AS Length
                FROM Album al JOIN Artist ar ON ar.ArtistId = al.ArtistId LEFT JOIN Track t ON t.AlbumId = al.AlbumId
                GROUP BY al.AlbumId;
        """)
        conn.executemany("INSERT INTO Genre VALUES (?, ?)", [(g, f"Genre {g}") for g in range(1, 6)])
        conn.executemany("INSERT INTO Artist VALUES (?, ?)", [(a, f"Artist {a}") for a in range(1, 9)])
        conn.executemany("INSERT INTO Album VALUES (?, ?, ?)", [(a, f"Album {a}", 1 + a % 8) for a in range(1, 13)])
        conn.executemany("INSERT INTO Track VALUES (?, ?, ?, ?, ?, ?)",
                         [(t, f"Track {t}", 1 + t % 11, 1 + (t * t) % 5, 120000 + t * 1371, 0.99 if t % 4 else 1.99)
                          for t in range(1, 91)])
        conn.executemany("INSERT INTO Customer VALUES (?, ?, ?, ?, ?)",
                         [(c, f"First{c}", f"Last{c}", ["Brazil", "Canada", "USA"][c % 3], f"c{c}@x.io") for c in range(1, 16)])
        lines, line_id = [], 1
        for i in range(1, 61):
            items = [(line_id + k, i, 1 + (i * 7 + k) % 90, 0.99 if k % 2 else 1.99, 1 + k % 2) for k in range(1 + i % 4)]
            line_id += len(items)
            lines += items
            total = round(sum(p * q for *_, p, q in items), 2)
            conn.execute("INSERT INTO Invoice VALUES (?, ?, ?, ?, ?)",
                         (i, 1 + i % 15, f"20{21 + i % 3}-0{1 + i % 9}-1{i % 10} 00:00:00", "USA", total))
        conn.executemany("INSERT INTO InvoiceLine VALUES (?, ?, ?, ?, ?)", lines)


def build_northwind(path):
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE Categories (CategoryID INTEGER PRIMARY KEY, CategoryName TEXT NOT NULL, Description TEXT);
            CREATE TABLE Suppliers (SupplierID INTEGER PRIMARY KEY, CompanyName TEXT NOT NULL, ContactName TEXT,
                                    City TEXT, Country TEXT);
            CREATE TABLE Products (ProductID INTEGER PRIMARY KEY, ProductName TEXT NOT NULL,
                                   SupplierID INTEGER REFERENCES Suppliers, CategoryID INTEGER REFERENCES Categories,
                                   QuantityPerUnit TEXT, UnitPrice NUMERIC DEFAULT 0, UnitsInStock INTEGER DEFAULT 0,
                                   Discontinued BOOLEAN NOT NULL DEFAULT 0);
            CREATE TABLE Customers (CustomerID TEXT PRIMARY KEY, CompanyName TEXT NOT NULL, ContactName TEXT,
                                    City TEXT, Country TEXT);
            CREATE TABLE Orders (OrderID INTEGER PRIMARY KEY, CustomerID TEXT REFERENCES Customers,
                                 OrderDate DATETIME, ShippedDate DATETIME, ShipCountry TEXT);
            CREATE TABLE "Order Details" (OrderID INTEGER NOT NULL REFERENCES Orders, ProductID INTEGER NOT NULL
                                          REFERENCES Products, UnitPrice NUMERIC NOT NULL, Quantity INTEGER NOT NULL,
                                          Discount REAL NOT NULL DEFAULT 0, PRIMARY KEY (OrderID, ProductID));
            CREATE VIEW [Products by Category] AS
                SELECT Categories.CategoryName, Products.ProductName, Products.QuantityPerUnit, Products.UnitsInStock,
                       Products.Discontinued
                FROM Categories INNER JOIN Products ON Categories.CategoryID = Products.CategoryID
                WHERE Products.Discontinued <> 1;
            CREATE VIEW [Alphabetical list of products] AS
                SELECT Products.*, Categories.CategoryName FROM Categories INNER JOIN Products
                ON Categories.CategoryID = Products.CategoryID WHERE (((Products.Discontinued)=0));
            CREATE VIEW [Order Subtotals] AS
                SELECT [Order Details].OrderID, Sum(([Order Details].UnitPrice*Quantity*(1-Discount)/100)*100) AS Subtotal
                FROM [Order Details] GROUP BY [Order Details].OrderID;
            CREATE VIEW [Sales by Category] AS
                SELECT Categories.CategoryID, Categories.CategoryName, Products.ProductName,
                       Sum([Order Subtotals].Subtotal) AS ProductSales
                FROM Categories JOIN Products ON Categories.CategoryID = Products.CategoryID
                JOIN [Order Details] ON Products.ProductID = [Order Details].ProductID
                JOIN [Order Subtotals] ON [Order Subtotals].OrderID = [Order Details].OrderID
                JOIN Orders ON Orders.OrderID = [Order Details].OrderID
                WHERE Orders.OrderDate BETWEEN '1997-01-01' AND '1997-12-31'
                GROUP BY Categories.CategoryID, Categories.CategoryName, Products.ProductName;
            CREATE VIEW [Customer and Suppliers by City] AS
                SELECT City, CompanyName, ContactName, 'Customers' AS Relationship FROM Customers
                UNION SELECT City, CompanyName, ContactName, 'Suppliers' FROM Suppliers;
            CREATE VIEW [Orders Qry] AS
                SELECT Orders.OrderID, Orders.CustomerID, date(Orders.OrderDate) AS OrderDay,
                       julianday(Orders.ShippedDate) - julianday(Orders.OrderDate) AS DaysToShip,
                       Customers.CompanyName, Customers.Country
                FROM Customers JOIN Orders ON Customers.CustomerID = Orders.CustomerID;
        """)
        conn.executemany("INSERT INTO Categories VALUES (?, ?, ?)", [(c, f"Category {c}", f"About {c}") for c in range(1, 6)])
        conn.executemany("INSERT INTO Suppliers VALUES (?, ?, ?, ?, ?)",
                         [(s, f"Supplier {s}", f"Contact S{s}", ["Berlin", "London", "Lyon"][s % 3], "DE") for s in range(1, 7)])
        conn.executemany("INSERT INTO Products VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         [(p, f"Product {p}", 1 + p % 6, 1 + p % 5, f"{p} boxes", round(2.5 + p * 1.25, 2), p * 3 % 40,
                           int(p % 7 == 0)) for p in range(1, 41)])
        conn.executemany("INSERT INTO Customers VALUES (?, ?, ?, ?, ?)",
                         [(f"C{c:03}", f"Company {c}", f"Contact C{c}", ["Berlin", "Paris", "Lyon"][c % 3], "FR")
                          for c in range(1, 21)])
        details = []
        for o in range(1, 81):
            conn.execute("INSERT INTO Orders VALUES (?, ?, ?, ?, ?)",
                         (o, f"C{1 + o % 20:03}", f"199{6 + o % 3}-{1 + o % 12:02}-{1 + o % 28:02} 00:00:00",
                          f"199{6 + o % 3}-{1 + o % 12:02}-{2 + o % 27:02} 12:00:00", "FR"))
            details += [(o, 1 + (o * 3 + k) % 40, round(2.5 + k * 0.75, 2), 1 + (o + k) % 9, [0, 0.05, 0.1][k % 3])
                        for k in range(1 + o % 3)]
        conn.executemany('INSERT INTO "Order Details" VALUES (?, ?, ?, ?, ?)', details)


SAMPLES = {
    "chinook": (build_chinook, {"Invoice Totals": {}, "customer_spend": {}, "top_genres": {}, "album_tracks": {2: "; "}}),
    "northwind": (build_northwind, {"Products by Category": {}, "Alphabetical list of products": {},
                                    "Order Subtotals": {}, "Sales by Category": {},
                                    "Customer and Suppliers by City": {}, "Orders Qry": {}}),
}


@pytest.mark.parametrize("sample", SAMPLES)
def test_sample_database_loads_content_equal_with_its_views(sample, tmp_path, pg_url):
    build, views = SAMPLES[sample]
    db = tmp_path / f"{sample}.sqlite"
    build(db)
    run = init_and_migrate(tmp_path, db, pg_url)
    res, report = run.res, run.report
    assert res.exit_code == 0, res.output
    assert report["status"] == "succeeded"
    for name, t in report["tables"].items():
        assert t["reconciled"] and t["quarantined_rows"] == 0 and t["loaded_rows"] > 0, name
    failed = [c for c in report["checks"] if not c["passed"]]
    assert not failed, failed  # content hashes, the view check and the proposed parity statements
    assert {c["check"] for c in report["checks"]} >= {"content_hash", "view_rows"}
    assert not [n for n in report["notes"] if "not carried over" in n], report["notes"]
    with psycopg.connect(pg_url) as pg:
        found = {r[0] for r in pg.execute("SELECT table_name FROM information_schema.views WHERE table_schema = 'public'")}
    assert found == set(views)
    for name, lists in views.items():
        quoted = '"' + name + '"'
        same_rows(db, pg_url, f"SELECT * FROM {quoted}", f"SELECT * FROM {quoted}", lists)

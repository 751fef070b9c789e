"""The dashboard's pages, one module each: a GET handler and the forms it posts."""

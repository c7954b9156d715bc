"""Models shipped with coromix, used by ``coromix demo`` and the tests."""

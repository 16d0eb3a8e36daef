def main(blob) -> None:
    pass

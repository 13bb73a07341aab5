defmodule McpSessionStore.OptionsAndLimitsTest do
  # What the NIF takes from the shared bridge crate: the open-options parser,
  # the default page limit, the error kinds; and the one workspace version.
  use ExUnit.Case, async: true

  alias McpSessionStore, as: S
  alias McpSessionStore.EventId

  test "the Mix version is the workspace version (the core's)" do
    assert to_string(Application.spec(:mcp_session_store, :vsn)) == S.core_version()
  end

  test "open options: keyword list or map, durations in ms or with a unit, nil is the default" do
    ttl = fn opts -> S.create_session!(S.open!("memory://", opts)).ttl_ms end
    assert ttl.(ttl: 90_000) == 90_000
    assert ttl.(ttl: "90s") == 90_000
    assert ttl.(%{ttl: "2h"}) == 7_200_000
    assert ttl.(ttl_ms: 1_500) == 1_500
    assert ttl.(ttl: nil) == 30 * 60_000
    assert ttl.([]) == 30 * 60_000
    # The URL's query parameters win.
    assert S.create_session!(S.open!("memory://?ttl=1m", ttl: "2h")).ttl_ms == 60_000

    capped =
      S.open!("memory://", max_sessions: 1, poll_interval: "20ms", max_events_per_session: 2)

    S.create_session!(capped)
    assert {:error, {:limit_exceeded, _}} = S.create_session(capped)
    assert {:ok, _} = S.open("memory://", max_sessions: nil, max_payload_bytes: 4096)
  end

  test "open options: bad names, types and combinations are invalid_input naming the option" do
    assert {:error, {:invalid_input, msg}} = S.open("memory://", tll: "5m")
    assert msg =~ ~s(unknown option "tll")
    assert {:error, {:invalid_input, msg}} = S.open("memory://", ttl: 1000, ttl_ms: 1000)
    assert msg =~ "set the same option"
    assert {:error, {:invalid_input, msg}} = S.open("memory://", max_sessions: -5)
    assert msg =~ "max_sessions"
    assert {:error, {:invalid_input, msg}} = S.open("memory://", ttl: 1.5)
    assert msg =~ "ttl"

    for bad <- [self(), {1, 2}, [1], "5"] do
      assert {:error, {:invalid_input, _}} = S.open("memory://", max_events_per_session: bad)
    end
  end

  test "pages: the core's default limit of 100, explicit limits 1-10 000" do
    store = S.open!("memory://")
    session = S.create_session!(store)

    for n <- 1..150, do: S.append_event!(store, session.id, "st", n)

    page = S.events_after!(store, session.id, EventId.start("st"))
    assert length(page.items) == 100
    assert page.next == List.last(page.items).wire_id
    rest = S.replay!(store, session.id, page.next)
    assert Enum.map(rest.items, & &1.data) == Enum.to_list(101..150)
    assert rest.next == nil

    assert length(S.events_after!(store, session.id, EventId.start("st"), limit: 10_000).items) ==
             150

    for _ <- 1..101, do: S.create_session!(store)
    assert length(S.list_sessions!(store).items) == 100
    assert length(S.list_sessions!(store, limit: 1).items) == 1

    for bad <- [0, 10_001] do
      assert {:error, {:invalid_input, msg}} = S.list_sessions(store, limit: bad)
      assert msg =~ "limit must be 1-10000"
    end
  end
end

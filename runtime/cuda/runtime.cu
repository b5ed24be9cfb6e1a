#include "runtime.h"

#include <chrono>

namespace stow::cuda {

void check(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw Error("CUDA error in " + what + ": " + cudaGetErrorString(e));
}

namespace {
void check_blas(Cublas::Status s, const char* what) {
  if (s != 0) throw Error(std::string("cuBLAS error in ") + what + ": status " + std::to_string(s));
}

// cuBLAS's own scratch memory, handed to it so that it never allocates during a step.
constexpr size_t kBlasWorkspaceBytes = size_t(32) << 20;
}  // namespace

Runtime::Runtime(int host_threads) : host_threads_(host_threads), host_pool_(host_threads) {
  check(cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking), "creating the compute stream");
  check(cudaStreamCreateWithFlags(&to_device_, cudaStreamNonBlocking), "creating the host-to-device copy stream");
  check(cudaStreamCreateWithFlags(&to_host_, cudaStreamNonBlocking), "creating the device-to-host copy stream");
  blas_ = Cublas::load();
  check_blas(blas_.create(&blas_handle_), "cublasCreate");
  check_blas(blas_.set_stream(blas_handle_, compute_), "cublasSetStream");
  check(cudaMalloc(&blas_workspace_, kBlasWorkspaceBytes), "allocating cuBLAS's workspace");
  check_blas(blas_.set_workspace(blas_handle_, blas_workspace_, kBlasWorkspaceBytes), "cublasSetWorkspace");
}

// Errors are not thrown from here: the session is going away, possibly because of one.
Runtime::~Runtime() {
  try {
    host_.drain();
    if (disk_) disk_->drain();
    if (disk_writer_) disk_writer_->drain();
    if (disk_reader_) disk_reader_->drain();
  } catch (const std::exception&) {
  }
  cudaDeviceSynchronize();
  if (blas_handle_ != nullptr) blas_.destroy(blas_handle_);
  cudaFree(blas_workspace_);
  cudaFree(scratch_);
  for (Copy& c : copies_) {
    cudaEventDestroy(c.ready);
    cudaEventDestroy(c.done);
  }
  for (cudaStream_t s : {compute_, to_device_, to_host_, from_disk_})
    if (s != nullptr) cudaStreamDestroy(s);
}

Runtime::Copy& Runtime::copy_slot(int64_t ticket) {
  while (int64_t(copies_.size()) < ticket) {
    Copy c{};
    check(cudaEventCreateWithFlags(&c.ready, cudaEventDisableTiming), "creating a copy event");
    check(cudaEventCreateWithFlags(&c.done, cudaEventDisableTiming), "creating a copy event");
    copies_.push_back(c);
  }
  return copies_[size_t(ticket - 1)];
}

HostThreads& Runtime::disk_write_io() {
  if (!disk_write_io_) disk_write_io_ = std::make_unique<HostThreads>(TransferEngine::kDiskRequests);
  return *disk_write_io_;
}

Worker& Runtime::disk_writer() {
  if (!disk_writer_) disk_writer_ = std::make_unique<Worker>();
  return *disk_writer_;
}

Worker& Runtime::disk_reader() {
  if (!disk_reader_) {
    check(cudaStreamCreateWithFlags(&from_disk_, cudaStreamNonBlocking), "creating the disk-to-device copy stream");
    disk_read_io_ = std::make_unique<HostThreads>(TransferEngine::kDiskRequests);
    disk_reader_ = std::make_unique<Worker>();
  }
  return *disk_reader_;
}

DiskPipeline& Runtime::disk_pipeline() {
  if (!disk_) disk_ = std::make_unique<DiskPipeline>(host_, TransferEngine::kDiskRequests);
  return *disk_;
}

int64_t Runtime::copy_async(void* dst, const void* src, int64_t bytes, bool to_device) {
  const int64_t ticket = ++tickets_;
  Copy& c = copy_slot(ticket);
  c.from_disk = false;
  cudaStream_t stream = to_device ? to_device_ : to_host_;
  (to_device ? h2d_bytes : d2h_bytes) += bytes;
  check(cudaEventRecord(c.ready, compute_), "ordering a copy after compute");
  check(cudaStreamWaitEvent(stream, c.ready, 0), "ordering a copy after compute");
  check(cudaMemcpyAsync(dst, src, size_t(bytes), to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost, stream),
        to_device ? "a host-to-device copy" : "a device-to-host copy");
  check(cudaEventRecord(c.done, stream), "recording a copy's completion");
  return ticket;
}

void Runtime::wait(int64_t ticket) {
  if (ticket < 1 || ticket > tickets_) throw Error("internal: wait on unknown copy ticket " + std::to_string(ticket));
  Copy& c = copy_slot(ticket);
  if (c.from_disk) wait_queued(ticket);
  check(cudaStreamWaitEvent(compute_, c.done, 0), "waiting for a copy");
}

int64_t Runtime::copy_from_disk(void* dst, DiskTier& disk, int64_t offset, void* stage, int64_t bytes) {
  Worker& reader = disk_reader();
  const int64_t ticket = ++tickets_;
  Copy& c = copy_slot(ticket);
  c.from_disk = true;
  h2d_bytes += bytes;
  // Recorded here, on the compute thread: the copy follows the compute queued so far (the destination's
  // previous readers), whenever the reader gets to it.
  check(cudaEventRecord(c.ready, compute_), "ordering a copy from disk after compute");
  reader.submit([this, dst, &disk, offset, stage, bytes, ticket, ready = c.ready, done = c.done] {
    try {
      disk.read(disk_read_io_.get(), offset, stage, DiskTier::span(offset, bytes));
      check(cudaStreamWaitEvent(from_disk_, ready, 0), "ordering a copy from disk after compute");
      check(cudaMemcpyAsync(dst, stage, size_t(bytes), cudaMemcpyHostToDevice, from_disk_), "a copy from the disk tier to the device");
      check(cudaEventRecord(done, from_disk_), "recording a copy's completion");
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(queued_mu_);
      if (disk_read_error_.empty()) disk_read_error_ = e.what();
      queued_cv_.notify_all();
      throw;
    }
    {
      std::lock_guard<std::mutex> lock(queued_mu_);
      disk_queued_ = ticket;
    }
    queued_cv_.notify_all();
    // The next read reuses the stage: it starts once this copy has left it.
    check(cudaEventSynchronize(done), "a copy from the disk tier to the device");
  });
  return ticket;
}

void Runtime::wait_queued(int64_t ticket) {
  std::unique_lock<std::mutex> lock(queued_mu_);
  queued_cv_.wait(lock, [&] { return disk_queued_ >= ticket || !disk_read_error_.empty(); });
  if (!disk_read_error_.empty()) throw Error(disk_read_error_);
}

void Runtime::host_task(int64_t after, std::function<void()> job) {
  cudaEvent_t done = copy_slot(after).done;
  host_.submit([done, job = std::move(job)] {
    check(cudaEventSynchronize(done), "waiting for a gradient's copy to the host");
    job();
  });
}

void Runtime::disk_update(int64_t after, DiskTier& disk, const DiskStages& stages, DiskUpdate update) {
  cudaEvent_t done = copy_slot(after).done;
  // The gradient, when on disk, is written out by the writer's job with this ticket (none: 0).
  Worker* writer = disk_writer_.get();
  const int64_t written = last_disk_write_;
  update.gradient_in = [writer, done, written] {
    check(cudaEventSynchronize(done), "waiting for a gradient's copy to the host");
    if (writer != nullptr) writer->wait(written);
  };
  disk_pipeline().submit(disk, stages, update, [](std::function<void()> job) { return job; });
}

int64_t Runtime::copy_to_disk(DiskTier& disk, int64_t offset, void* stage, const void* src, int64_t bytes,
                              std::function<void(const void*)> landed) {
  Worker& writer = disk_writer();
  HostThreads* io = &disk_write_io();
  writer.wait(last_disk_write_);  // one staging buffer: the previous gradient is out of it
  const int64_t ticket = copy_async(stage, src, bytes, false);
  cudaEvent_t done = copy_slot(ticket).done;
  last_disk_write_ = writer.submit([&disk, offset, stage, bytes, done, io, landed = std::move(landed)] {
    check(cudaEventSynchronize(done), "waiting for a gradient's copy to the host");
    landed(stage);
    disk.write(io, offset, stage, DiskTier::span(offset, bytes));
  });
  return ticket;
}

void Runtime::drain() {
  check(cudaStreamSynchronize(compute_), "the step's kernels");
  const auto computed = std::chrono::steady_clock::now();
  check(cudaStreamSynchronize(to_device_), "the step's copies to the device");
  check(cudaStreamSynchronize(to_host_), "the step's copies to the host");
  host_.drain();
  if (disk_) disk_->drain();
  if (disk_writer_) disk_writer_->drain();
  if (disk_reader_) {
    disk_reader_->drain();  // each of its jobs ends once its copy has landed
    std::lock_guard<std::mutex> lock(queued_mu_);
    disk_queued_ = 0;  // tickets start again
  }
  wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - computed).count();
  tickets_ = 0;
}

void Runtime::copy_now(void* dst, const void* src, int64_t bytes, cudaMemcpyKind kind, const std::string& what) {
  check(cudaMemcpyAsync(dst, src, size_t(bytes), kind, compute_), what);
  check(cudaStreamSynchronize(compute_), what);
}

void* Runtime::scratch(int64_t bytes) {
  if (bytes > scratch_bytes_) {
    check(cudaFree(scratch_), "freeing the scratch buffer");
    scratch_ = nullptr;
    check(cudaMalloc(&scratch_, size_t(bytes)), "allocating " + std::to_string(bytes) + " bytes of scratch");
    scratch_bytes_ = bytes;
  }
  return scratch_;
}

Runtime& runtime(const Ctx& c) {
  if (c.gpu == nullptr) throw Error(std::string("internal: node ") + c.node + " runs a CUDA kernel but no GPU runtime is open");
  return *c.gpu;
}

void check_launch(const Ctx& c, const char* kernel) {
  check(cudaGetLastError(), std::string("launching ") + kernel + " (node " + c.node + ")");
}

}  // namespace stow::cuda
